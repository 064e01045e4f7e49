# A file share over WebDAV and plain HTTP listing: lighttpd with mod_webdav on
# Alpine Linux, from the download template. Mount it from any desktop
# (davfs2, GNOME Files, Windows "map network drive") at http://NODE:8081/.
config template
	option name 'fileshare'
	option description 'File share (WebDAV over HTTP, lighttpd)'
	option version '1.0'
	list architecture 'x86_64'
	list architecture 'i586'
	list architecture 'armv7'
	list architecture 'aarch64'
	option source 'download'
	option dist 'alpine'
	option release '3.19'
	list setup 'apk add --no-cache lighttpd lighttpd-mod_webdav'
	list setup 'mkdir -p /srv/share /var/lib/lighttpd && chown lighttpd /srv/share /var/lib/lighttpd'
	list setup "printf 'server.document-root = \"/srv/share\"\\nserver.port = 80\\nserver.username = \"lighttpd\"\\nserver.groupname = \"lighttpd\"\\nserver.modules += (\"mod_webdav\")\\nwebdav.activate = \"enable\"\\nwebdav.is-readonly = \"disable\"\\nwebdav.sqlite-db-name = \"/var/lib/lighttpd/webdav.db\"\\ndir-listing.activate = \"enable\"\\n' > /etc/lighttpd/share.conf"
	option command 'exec lighttpd -D -f /etc/lighttpd/share.conf'
	list port '80:8081'
	option memory '32M'
	option cpu '0.5'
	option pids '64'
	option health 'http:80/'
	option publish_type 'webdav'
	option publish_description 'File share (WebDAV)'
	option publish '1'
