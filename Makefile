# Foundry — the two commands a newcomer needs are `make demo` and `make test`.
# Both install what is missing (Debian packages, Go modules, npm packages)
# and build everything first. Run as root on Debian 12.

SHELL := /bin/bash
export PATH := /usr/local/go/bin:$(PATH)
GO ?= go
BUILD := build
BIN := bin

# Debian packages the build, the tests and the demo use.
APT_PACKAGES := ipxe ipxe-qemu qemu-system-x86 ovmf kea-admin isc-dhcp-client \
	tftp-hpa dnsmasq-base busybox-static pci.ids chromium socat iproute2 util-linux \
	ca-certificates xz-utils zstd qemu-utils \
	mmdebstrap e2fsprogs dosfstools mtools extlinux syslinux-common grub-efi-amd64-bin \
	xorriso grub-pc-bin git openipmi ipmitool etcd-server etcd-client

# The discovery OS kernel: Debian's packaged kernel, the version that
# linux-image-amd64 depends on today (recorded in images/discovery/manifest.json).
KERNEL_PKG_CMD = apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/{print $$2; exit}'

.PHONY: all deps build images ipxe-images discovery-image os-image iso iso-previous iso-test docs-assets ui openapi test e2e unit demo demo-stop bench fuzz clean

all: build

## deps: install missing Debian packages and fetch Go modules.
deps: $(BUILD)/.apt $(BUILD)/.gomod

$(BUILD)/.apt: Makefile
	@mkdir -p $(BUILD)
	@missing=$$(for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages: $$missing"; \
		printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; rc=$$?; rm -f /usr/sbin/policy-rc.d; \
		if command -v systemctl >/dev/null; then systemctl disable --now etcd 2>/dev/null || true; fi; \
		[ $$rc = 0 ] || exit $$rc; \
	fi
	@# Node.js may come from elsewhere than Debian; install Debian's only when absent.
	@command -v npm >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm; }
	@touch $@

$(BUILD)/.gomod: go.mod go.sum
	@mkdir -p $(BUILD)
	$(GO) mod download
	@touch $@

## build: the appliance binary (with the embedded API docs and dashboard).
build: deps docs-assets ui
	$(GO) build -o $(BIN)/foundry ./cmd/foundry

## ui: the dashboard (Vite + TypeScript), embedded with go:embed.
ui: ui/dist/index.html

UI_SOURCES := $(shell find ui/src ui/public -type f 2>/dev/null) ui/index.html ui/vite.config.ts ui/tsconfig.json ui/openapi.json

ui/node_modules/.package-lock.json: ui/package.json ui/package-lock.json | $(BUILD)/.apt
	cd ui && npm ci --no-audit --no-fund --loglevel=error

ui/dist/index.html: ui/node_modules/.package-lock.json $(UI_SOURCES)
	cd ui && npm run build

## openapi: refresh ui/openapi.json (the dashboard's types) from the API.
openapi: $(BUILD)/.gomod
	$(GO) run ./ui/internal/genopenapi

## docs-assets: /docs is served from an npm package, embedded at build time.
docs-assets: api/docs/dist/swagger-ui-bundle.js

api/docs/dist/swagger-ui-bundle.js: api/docs/package.json api/docs/package-lock.json | $(BUILD)/.apt
	cd api/docs && npm ci --no-audit --no-fund --loglevel=error && npm run build

## images: everything `foundry serve` serves from image_dir.
images: ipxe-images discovery-image

ipxe-images: $(BUILD)/.apt
	@mkdir -p images/ipxe
	cp /usr/lib/ipxe/undionly.kpxe /usr/lib/ipxe/ipxe.efi /usr/lib/ipxe/snponly.efi images/ipxe/

# Debian's firmware packages holding the files the discovery image's
# drivers ask for (the rule and the files chosen: discovery-os/drivers;
# docs/discovery-coverage.md lists them). They are in the non-free-firmware
# component, which gets a sources entry of its own on the mirror apt
# already uses when no entry names it.
FIRMWARE_PKGS := firmware-bnx2 firmware-bnx2x firmware-linux-free firmware-misc-nonfree firmware-qlogic firmware-realtek
FIRMWARE_SOURCES := /etc/apt/sources.list.d/foundry-non-free-firmware.sources

$(BUILD)/firmware/.fetched: Makefile | $(BUILD)/.apt
	@mkdir -p $(BUILD)/firmware
	@if ! grep -rqsw non-free-firmware /etc/apt/sources.list /etc/apt/sources.list.d/; then \
		mirror=$$(awk '/^URIs:/{u=$$2} /^Suites:/ && / bookworm( |$$)/{print u; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null); \
		[ -n "$$mirror" ] || mirror=$$(awk '$$1=="deb" && $$3=="bookworm"{print $$2; exit}' /etc/apt/sources.list 2>/dev/null); \
		[ -n "$$mirror" ] || mirror=http://deb.debian.org/debian; \
		echo "adding $(FIRMWARE_SOURCES) (bookworm non-free-firmware from $$mirror)"; \
		printf 'Types: deb\nURIs: %s\nSuites: bookworm bookworm-updates\nComponents: non-free-firmware\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' "$$mirror" > $(FIRMWARE_SOURCES); \
		apt-get update -qq; \
	fi
	@for p in $(FIRMWARE_PKGS); do \
		ls $(BUILD)/firmware/$${p}_*.deb >/dev/null 2>&1 && continue; \
		apt-cache show $$p >/dev/null 2>&1 || apt-get update -qq; \
		(cd $(BUILD)/firmware && apt-get download -qq $$p) || exit 1; \
	done
	@touch $@

## discovery-image: Debian's kernel + an initramfs whose /init is our agent,
## with the drivers and firmware of discovery-os/drivers; prints the sizes
## and what the image covers.
discovery-image: $(BUILD)/.apt $(BUILD)/.gomod $(BUILD)/firmware/.fetched
	@mkdir -p $(BUILD)/kernel
	@pkg=$$($(KERNEL_PKG_CMD)); \
	if [ -z "$$pkg" ]; then apt-get update -qq; pkg=$$($(KERNEL_PKG_CMD)); fi; \
	test -n "$$pkg" || { echo "cannot resolve linux-image-amd64's kernel package"; exit 1; }; \
	ls $(BUILD)/kernel/$${pkg}_*.deb >/dev/null 2>&1 || (cd $(BUILD)/kernel && apt-get download $$pkg); \
	ls $(BUILD)/kernel/$${pkg}_*.deb | head -1 > $(BUILD)/kernel/current
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags='-s -w' -o $(BUILD)/foundry-agent ./discovery-os/cmd/foundry-agent
	$(GO) run ./discovery-os/cmd/mkdiscovery -kernel-deb $$(cat $(BUILD)/kernel/current) \
		-firmware $(BUILD)/firmware -cache $(BUILD)/cache/initramfs \
		-agent $(BUILD)/foundry-agent -pciids /usr/share/misc/pci.ids -out images/discovery

## iso: the appliance ISO, images/foundry-$(VERSION).iso — GRUB (BIOS and
## UEFI, CD and USB stick), the discovery image's kernel and one initramfs
## with foundry (its own init), the discovery and iPXE images; prints its size
## part by part against ISO_BUDGET (see images/README.md) and writes
## images/foundry-$(VERSION).iso.json. `make iso VERSION=1.2.3` names a release.
VERSION := $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
ISO_BUDGET := 88000000

ISO := images/foundry-$(VERSION).iso
# The "previous release" that iso-test upgrades from: this tree under another
# version, so the upgrade is proven on every run without a second checkout.
ISO_PREVIOUS := $(BUILD)/iso/previous/foundry-$(VERSION)-previous.iso

# build-iso VERSION OUT: foundry (static, the version linked in; as PID 1 it is
# the appliance's init) and the ISO around it.
define build-iso
	@mkdir -p $(BUILD)/iso/$(1) $(dir $(2))
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags='-s -w -X main.version=$(1)' -o $(BUILD)/iso/$(1)/foundry ./cmd/foundry
	$(GO) run ./images/cmd/mkiso -kernel-deb $$(cat $(BUILD)/kernel/current) \
		-foundry $(BUILD)/iso/$(1)/foundry \
		-discovery images/discovery -ipxe images/ipxe -pciids /usr/share/misc/pci.ids \
		-cache $(BUILD)/iso/xz-cache -version $(1) -budget $(ISO_BUDGET) -out $(2)
endef

iso: images docs-assets ui
	@rm -f images/foundry-*.iso images/foundry-*.iso.json
	$(call build-iso,$(VERSION),$(ISO))

iso-previous: images docs-assets ui
	@rm -rf $(BUILD)/iso/previous
	$(call build-iso,$(VERSION)-previous,$(ISO_PREVIOUS))

## iso-test: the ISO's acceptance run (test/e2e_iso_test.go): the previous
## release set up on a blank data disk (BIOS), a machine PXE-booting from it,
## the power button, then this release (UEFI, as a USB stick) on the same
## disk; `make test` runs it too.
iso-test: deps iso iso-previous
	FOUNDRY_ISO=$(abspath $(ISO)) FOUNDRY_ISO_PREVIOUS=$(abspath $(ISO_PREVIOUS)) \
		$(GO) test -count=1 -timeout 20m -tags qemu -run 'TestE2EISO' -v ./test/

## os-image: a real Debian 12 disk image (BIOS and UEFI, cloud-init reading
## only a NoCloud seed) built from Debian's packages with mmdebstrap into
## build/os/ (.raw, .raw.zst, .sha256); rebuilt only when its recipe
## (images/osimage) or the build tools change.
os-image: $(BUILD)/.apt $(BUILD)/.gomod
	$(GO) run ./images/cmd/mkosimage -dir $(BUILD)/os

## test: the whole suite — unit, integration in network namespaces, and
## emulated machines. This is what CI runs.
test: deps images os-image docs-assets ui iso iso-previous
	@# go.mod and go.sum say exactly what the code imports (prints the diff
	@# and fails otherwise: run `go mod tidy`).
	$(GO) mod tidy -diff
	$(GO) vet ./...
	cd ui && npm test
	FOUNDRY_ISO=$(abspath $(ISO)) FOUNDRY_ISO_PREVIOUS=$(abspath $(ISO_PREVIOUS)) \
		$(GO) test -count=1 -timeout 45m -tags qemu ./...
	@# The store's suite again, on a real etcd cluster (store/backend_test.go).
	FOUNDRY_STORE_BACKEND=etcd $(GO) test -count=1 -timeout 15m ./store/
	GO=$(GO) FUZZTIME=$(FUZZTIME_SHORT) FUZZ_FRESH=1 ./test/fuzz.sh

## e2e: only the emulated-machine tests (the whole discovery loop under
## QEMU); `make test` runs them too.
e2e: deps images os-image docs-assets ui iso iso-previous
	FOUNDRY_ISO=$(abspath $(ISO)) FOUNDRY_ISO_PREVIOUS=$(abspath $(ISO_PREVIOUS)) \
		$(GO) test -count=1 -timeout 30m -run 'E2E|QEMU' -v ./test/

## unit: every test that needs no root and no namespace, with -short, run
## as a user without privileges (as root: a system user, foundry-unit);
## tests that need root skip one by one and say why. See test/unit.sh.
unit: deps
	GO=$(GO) ./test/unit.sh

## demo: the appliance in a private network namespace with an emulated
## machine PXE-booting into discovery, and the Debian image of os-image in
## its image library as the default production profile; prints the
## dashboard URL.
demo: build images os-image
	./test/demo.sh start

demo-stop:
	./test/demo.sh stop

## fuzz: every fuzz target (every func FuzzXxx in a _test.go file) for
## FUZZTIME each (default 1m: about an hour in all), one after another,
## building on go's fuzz cache; reports which found an input (go writes it
## to the package's testdata/fuzz/, where it becomes a regression test).
## `make test` runs the same for FUZZTIME_SHORT (2s) each from the seed
## corpora alone. See test/fuzz.sh.
FUZZTIME ?= 1m
FUZZTIME_SHORT ?= 2s
fuzz: deps docs-assets ui
	GO=$(GO) FUZZTIME=$(FUZZTIME) ./test/fuzz.sh

## bench: DHCP throughput and other numbers, against peers in the same run
## (Kea and tftp-hpa; see bench/README.md).
bench: build images $(BUILD)/.bench-peers
	$(GO) test -run '^$$' -bench . -benchtime 1x -timeout 60m ./bench/...

# The peers are installed without starting or enabling their services: a
# DHCP or TFTP server left running on the host is an outage waiting to happen.
BENCH_PACKAGES := kea-dhcp4-server tftpd-hpa strace
$(BUILD)/.bench-peers: | $(BUILD)/.apt
	@missing=$$(for p in $(BENCH_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d; \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; rc=$$?; rm -f /usr/sbin/policy-rc.d; \
		if command -v systemctl >/dev/null; then systemctl disable --now tftpd-hpa kea-dhcp4-server 2>/dev/null || true; fi; \
		exit $$rc; \
	fi
	@touch $@

clean:
	rm -rf $(BIN) $(BUILD) images/ipxe images/discovery images/foundry-*.iso* api/docs/node_modules ui/node_modules ui/dist
