# A static web site served by busybox httpd. Built from the offline busybox
# template (a copy of the node's own busybox), so it installs without any
# network and runs on every board: the tests and the page's click-through use it.
config template
	option name 'website'
	option description 'Static web site (busybox httpd)'
	option version '1.0'
	list architecture 'all'
	option source 'busybox'
	option command "mkdir -p /srv/www; [ -f /srv/www/index.html ] || echo '<html><body><h1>Hello from nuvol</h1></body></html>' > /srv/www/index.html; exec httpd -f -p 80 -h /srv/www"
	list port '80:8080'
	option memory '16M'
	option cpu '0.5'
	option pids '32'
	option health 'http:80/'
	option publish_type 'http'
	option publish_description 'Static web site'
	option publish '1'
