#!/usr/bin/env bash
# ./build.sh image against a stand-in ImageBuilder of each kind (24.10 with
# opkg, 25.12 with apk; what the stand-in keeps of the real Makefile is said
# at fake_ib): the board's .ipk or .apk lands in its packages/ and is
# installed into the image root by the real opkg or apk, enabled by its
# post-install script; PACKAGES names nuvol and
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
. "$ROOT/tests/lib/openwrt-root.sh"
owrt_prefix
command -v openssl >/dev/null || t_skip "openssl not installed (the apk ImageBuilder's key)"

# fake_ib DIR ARCH [apk|opkg]: the stand-in. Its Makefile keeps the real
# ImageBuilder's (../shared/upstream/openwrt/target/imagebuilder/files/
# Makefile) package steps with the real programs: package_reload/
# package_index (apk mkndx signed with keys/local-private-key.pem, or
# Packages), package_install (apk add --arch --no-scripts, or opkg
# --offline-root as rootfs.mk calls it), prepare_rootfs (FILES copied over
# the root, each post-install script run with IPKG_INSTROOT as rootfs.mk
# does). Still stand-ins: the feed (libc and uhttpd made by the test; only
# nuvol and its dependencies are installed, the other PACKAGES recorded),
# base-files (the root starts as tests/lib/openwrt-root.sh lays it out), no
# kernel, no image file.
fake_ib() {
	local dir=$1 arch=$2 pm=${3:-opkg}
	mkdir -p "$dir/packages" "$dir/target/linux" "$dir/keys"
	printf 'CONFIG_TARGET_ARCH_PACKAGES="%s"\nCONFIG_SIGNATURE_CHECK=y\n' "$arch" >"$dir/.config"
	if [ "$pm" = apk ]; then
		echo 'CONFIG_USE_APK=y' >>"$dir/.config"
		openssl ecparam -name prime256v1 -genkey -noout -out "$dir/keys/local-private-key.pem" 2>/dev/null
		openssl ec -in "$dir/keys/local-private-key.pem" -pubout -out "$dir/keys/local-public-key.pem" 2>/dev/null
		owrt_base_apk "$dir/packages" "$arch" >/dev/null
	else
		owrt_base_ipk "$dir/packages" "$arch"
	fi
	{
		printf '%s\n' "UP:=$UP" "ARCH_PACKAGES:=$arch" "PM:=$pm" \
			'PACKAGE_DIR:=$(CURDIR)/packages' 'TARGET_DIR:=$(CURDIR)/build_dir/target-root' \
			'APK:=$(UP)/bin/apk --root $(TARGET_DIR) --keys-dir $(CURDIR)/keys --no-cache --no-logfile --repository $(PACKAGE_DIR)/packages.adb' \
			'# Only what the test feed has: the rest of PACKAGES is recorded.' \
			'INSTALL:=$(filter nuvol,$(PACKAGES))' \
			'OPKG:=IPKG_NO_SCRIPT=1 IPKG_INSTROOT=$(TARGET_DIR) $(UP)/bin/opkg --offline-root $(TARGET_DIR) --force-postinstall --add-dest root:/ --add-arch all:100 --add-arch $(ARCH_PACKAGES):200 -f $(CURDIR)/repositories.conf'
		printf '%s\n' 'image:' \
			'	@echo "PROFILE=$(PROFILE)" > $(CURDIR)/called' \
			'	@echo "PACKAGES=$(PACKAGES)" >> $(CURDIR)/called' \
			'	@echo "FILES=$(FILES)" >> $(CURDIR)/called' \
			'	@rm -rf $(CURDIR)/files-seen && cp -a $(FILES) $(CURDIR)/files-seen' \
			'	rm -rf $(TARGET_DIR) && mkdir -p $(TARGET_DIR) && cp -a $(CURDIR)/base-root/. $(TARGET_DIR)/' \
			'	$(MAKE) package_reload package_install prepare_rootfs' \
			'package_reload:' \
			'ifeq ($(PM),apk)' \
			'	$(APK) add --arch $(ARCH_PACKAGES) --initdb' \
			'	cd $(PACKAGE_DIR) && $(UP)/bin/apk mkndx --keys-dir $(CURDIR)/keys --sign $(CURDIR)/keys/local-private-key.pem --allow-untrusted --output packages.adb *.apk' \
			'else' \
			'	printf "src imagebuilder file:$(PACKAGE_DIR)\nlists_dir ext /var/opkg-lists\n" > $(CURDIR)/repositories.conf' \
			'	cd $(PACKAGE_DIR) && for f in *.ipk; do tar -xzOf $$f ./control.tar.gz | tar -xzOf - ./control; printf "Filename: %s\n\n" $$f; done > Packages' \
			'	mkdir -p $(TARGET_DIR)/var/opkg-lists && $(OPKG) update' \
			'endif' \
			'package_install:' \
			'ifeq ($(PM),apk)' \
			'	$(if $(INSTALL),$(APK) add --arch $(ARCH_PACKAGES) --no-scripts $(INSTALL))' \
			'else' \
			'	$(if $(INSTALL),$(OPKG) install $(INSTALL))' \
			'endif' \
			'prepare_rootfs:' \
			'	cp -a $(FILES)/. $(TARGET_DIR)/' \
			'ifeq ($(PM),apk)' \
			'	[ ! -f $(TARGET_DIR)/lib/apk/db/scripts.tar.gz ] || tar -C $(TARGET_DIR)/lib/apk/packages -xzf $(TARGET_DIR)/lib/apk/db/scripts.tar.gz' \
			'	cd $(TARGET_DIR) && for s in lib/apk/packages/*.post-install; do [ -f $$s ] || continue; IPKG_INSTROOT=$(TARGET_DIR) bash $$s || exit 1; done' \
			'	rm -f $(TARGET_DIR)/lib/apk/packages/*.post-install $(TARGET_DIR)/lib/apk/packages/*.post-upgrade $(TARGET_DIR)/lib/apk/packages/*.pre-deinstall' \
			'else' \
			'	cd $(TARGET_DIR) && for s in usr/lib/opkg/info/*.postinst; do [ -f $$s ] || continue; IPKG_INSTROOT=$(TARGET_DIR) bash $$s || exit 1; done' \
			'endif'
	} >"$dir/Makefile"
	# What the base-files package would put in the root first (stand-in).
	owrt_root "$dir/base-root"
}

# image_with PM: ./build.sh image against a stand-in of an ImageBuilder
# that installs with PM (opkg: OpenWRT 24.10, apk: 25.12).
image_with() {
	PM=$1 W=$2
	fake_ib "$W/ib" "$OPENWRT_ARCH" "$PM"
	out=$(./build.sh image "$B" --imagebuilder "$W/ib" --profile some_profile --microcloud guifi-bcn \
		--join 10.0.0.1:7946 --join 10.0.0.2:7946 --key QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWY= 2>&1 </dev/null)
	rc=$?
	printf '%s\n' "$out" | tail -n 5
	t_check "$PM: image exits 0" [ "$rc" -eq 0 ]
	t_check "$PM: make image ran with the profile" grep -qx "PROFILE=some_profile" "$W/ib/called"
	t_check "$PM: PACKAGES has nuvol and uhttpd" grep -q "^PACKAGES=nuvol uhttpd" "$W/ib/called"
	if [ "$FLASH_MB" -gt 16 ]; then
		t_check "$PM: PACKAGES has the lxc tools on a board with room" grep -q "lxc-start" "$W/ib/called"
	else
		t_check "$PM: PACKAGES leaves lxc out on a small-flash board" bash -c "! grep -q lxc '$W/ib/called'"
	fi
	if [ "$PM" = apk ]; then
		t_check "$PM: the board's .apk (only) is in the ImageBuilder's packages/" \
			bash -c "ls '$W/ib/packages/' | grep -qx 'nuvol-.*-r[0-9]*.apk' && ! ls '$W/ib/packages/' | grep -q '^nuvol_'"
	else
		t_check "$PM: the board's .ipk (only) is in the ImageBuilder's packages/" \
			bash -c "ls '$W/ib/packages/' | grep -qx 'nuvol_.*_$OPENWRT_ARCH.ipk' && ! ls '$W/ib/packages/' | grep -q '^nuvol-'"
	fi
	in_image() {
		local t=$W/ib/build_dir/target-root
		[ -x "$t/usr/bin/nuvol" ] && cmp -s "$t/usr/bin/nuvol" "dist/$B/nuvol" &&
			[ "$(readlink "$t/etc/rc.d/S95nuvol")" = ../init.d/nuvol ] &&
			[ -x "$t/etc/uci-defaults/90-nuvol" ] && [ -x "$t/etc/uci-defaults/89-nuvol-image" ] &&
			[ -f "$t/lib/upgrade/keep.d/nuvol" ]
	}
	t_check "$PM: the image root has nuvol, enabled by its post-install, both first-boot scripts waiting" in_image
	first_boot_settings() {
		local f=$W/ib/files-seen/etc/uci-defaults/89-nuvol-image
		cat "$f"
		sh -n "$f" &&
			grep -qx "uci -q set nuvol.main.microcloud='guifi-bcn'" "$f" &&
			[ "$(grep -c "add_list nuvol.main.join=" "$f")" = 2 ] &&
			grep -q "nuvol.image_key.secret='QUJD" "$f"
	}
	t_check "$PM: FILES carries the first-boot settings" first_boot_settings
}
t_tmpdir W image-opkg
image_with opkg "$W"
t_tmpdir W image-apk
image_with apk "$W"

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
				[ -x "$f/www/cgi-bin/nuvol" ] && grep -q "^exec /usr/bin/nuvol " "$f/www/cgi-bin/nuvol" &&
				[ "$(readlink "$f/etc/rc.d/S95nuvol")" = ../init.d/nuvol ] &&
				! grep -q "nuvol " "$W3/ib/called" && ! compgen -G "$W3/ib/packages/nuvol*" >/dev/null &&
				[ -x "$W3/ib/build_dir/target-root/usr/bin/nuvol" ]
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
