//! The nuvol page: a uhttpd CGI program and a built-in HTTP server.
