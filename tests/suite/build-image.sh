#!/usr/bin/env bash
# ./build.sh image against a stand-in ImageBuilder (a directory with the
# files a real one has and a Makefile that records what `make image` was
# given): the board's .ipk lands in its packages/, PACKAGES names nuvol and
# uhttpd (plus the lxc tools where the flash allows), FILES carries the
# first-boot settings from the command line, a mismatched ImageBuilder arch
# is refused in one line. Galileo, without an opkg arch, gets nuvol's files
# in FILES instead, enabled as the postinst would.
#
# NUVOL_TEST_IMAGE_BOARD picks the board (default turris-omnia, which build
# tests have usually built already).
set -u
. "$(dirname "$0")/../lib/common.sh"
cd "$ROOT" || exit 1

B=${NUVOL_TEST_IMAGE_BOARD:-turris-omnia}
t_board "$B" || t_skip "no board $B"

fake_ib() {
	local dir=$1 arch=$2
	mkdir -p "$dir/packages" "$dir/target/linux"
	printf 'CONFIG_TARGET_ARCH_PACKAGES="%s"\n' "$arch" >"$dir/.config"
	printf '%s\n' 'image:' \
		'	@echo "PROFILE=$(PROFILE)" > $(CURDIR)/called' \
		'	@echo "PACKAGES=$(PACKAGES)" >> $(CURDIR)/called' \
		'	@echo "FILES=$(FILES)" >> $(CURDIR)/called' \
		'	@rm -rf $(CURDIR)/files-seen && cp -a $(FILES) $(CURDIR)/files-seen' >"$dir/Makefile"
}

t_tmpdir W image
fake_ib "$W/ib" "$OPENWRT_ARCH"
out=$(./build.sh image "$B" --imagebuilder "$W/ib" --profile some_profile --microcloud guifi-bcn \
	--join 10.0.0.1:7946 --join 10.0.0.2:7946 --key QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWY= 2>&1 </dev/null)
rc=$?
printf '%s\n' "$out" | tail -n 5
t_check "image exits 0" [ "$rc" -eq 0 ]
t_check "make image ran with the profile" grep -qx "PROFILE=some_profile" "$W/ib/called"
t_check "PACKAGES has nuvol and uhttpd" grep -q "^PACKAGES=nuvol uhttpd" "$W/ib/called"
if [ "$FLASH_MB" -gt 16 ]; then
	t_check "PACKAGES has the lxc tools on a board with room" grep -q "lxc-start" "$W/ib/called"
else
	t_check "PACKAGES leaves lxc out on a small-flash board" bash -c "! grep -q lxc '$W/ib/called'"
fi
t_check "the board's .ipk is in the ImageBuilder's packages/" \
	bash -c "ls '$W/ib/packages/' | grep -qx 'nuvol_.*_$OPENWRT_ARCH.ipk'"
first_boot_settings() {
	local f=$W/ib/files-seen/etc/uci-defaults/89-nuvol-image
	cat "$f"
	sh -n "$f" &&
		grep -qx "uci -q set nuvol.main.microcloud='guifi-bcn'" "$f" &&
		[ "$(grep -c "add_list nuvol.main.join=" "$f")" = 2 ] &&
		grep -q "nuvol.image_key.secret='QUJD" "$f"
}
t_check "FILES carries the first-boot settings" first_boot_settings

t_tmpdir W2 image-wrong
fake_ib "$W2/ib" "mips_24kc_wrong"
one_line() {
	local o
	o=$(./build.sh image "$B" --imagebuilder "$W2/ib" 2>&1 </dev/null) && return 1
	echo "$o"
	[ "$(printf '%s\n' "$o" | wc -l)" = 1 ] && [[ $o == *"builds for mips_24kc_wrong"* ]]
}
t_check "an ImageBuilder for another arch is refused in one line" one_line

# Galileo: only if its binary (the i586 one) is cheap to have, i.e. already built.
if [ -x dist/galileo/nuvol ] || [ -x dist/alix/nuvol ]; then
	t_tmpdir W3 image-galileo
	fake_ib "$W3/ib" "i386_pentium-mmx"
	if ./build.sh image galileo --imagebuilder "$W3/ib" >"$W3/log" 2>&1 </dev/null; then
		galileo_files() {
			local f=$W3/ib/files-seen
			[ -x "$f/usr/bin/nuvol" ] && [ -x "$f/etc/init.d/nuvol" ] && [ -f "$f/etc/config/nuvol" ] &&
				[ "$(readlink "$f/www/cgi-bin/nuvol")" = /usr/bin/nuvol ] &&
				[ "$(readlink "$f/etc/rc.d/S95nuvol")" = ../init.d/nuvol ] &&
				! grep -q "nuvol " "$W3/ib/called" && [ -z "$(ls "$W3/ib/packages")" ]
		}
		t_check "galileo: nuvol's files go in FILES, enabled, no package" galileo_files
	else
		tail -n 5 "$W3/log"
		t_fail "galileo image"
	fi
else
	echo "note: no i586 binary in dist/, galileo image check left out"
fi
t_done
