# An MQTT broker: Eclipse Mosquitto on Alpine Linux, from the download
# template (images.linuxcontainers.org), so installing it needs Internet
# access from the node and from the container (DNS: option dns in the app
# settings). Anonymous clients are allowed: the broker is for the community
# network behind the router, not the open Internet.
config template
	option name 'mosquitto'
	option description 'MQTT broker (Eclipse Mosquitto)'
	option version '2.0'
	list architecture 'x86_64'
	list architecture 'i586'
	list architecture 'armv7'
	list architecture 'aarch64'
	option source 'download'
	option dist 'alpine'
	option release '3.19'
	list setup 'apk add --no-cache mosquitto'
	list setup "printf 'listener 1883\\nallow_anonymous true\\npersistence true\\npersistence_location /var/lib/mosquitto/\\n' > /etc/mosquitto/nuvol.conf"
	list setup 'mkdir -p /var/lib/mosquitto && chown mosquitto /var/lib/mosquitto'
	option command 'exec mosquitto -c /etc/mosquitto/nuvol.conf'
	list port '1883:1883'
	option memory '32M'
	option cpu '0.5'
	option pids '64'
	option health 'tcp:1883'
	option publish_type 'mqtt'
	option publish_description 'MQTT broker'
	option publish '1'
