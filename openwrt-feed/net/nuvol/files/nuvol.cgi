#!/bin/sh
# /www/cgi-bin/nuvol: the page. A script and not a symlink to /usr/bin/nuvol,
# because uhttpd with no_symlinks (-S) refuses links that leave /www. The
# binary serves a CGI request when GATEWAY_INTERFACE is set, as here.
exec /usr/bin/nuvol "$@"
