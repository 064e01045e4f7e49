//! Reader and atomic writer of OpenWRT UCI configuration files.
