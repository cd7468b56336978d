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
	tftp-hpa busybox-static pci.ids chromium socat iproute2 util-linux \
	dpkg-dev ca-certificates xz-utils zstd nodejs npm

.PHONY: all deps build images ipxe-images test unit integration e2e demo demo-stop bench clean

all: build

## deps: install missing Debian packages and fetch Go modules.
deps: $(BUILD)/.apt $(BUILD)/.gomod

$(BUILD)/.apt: Makefile
	@mkdir -p $(BUILD)
	@missing=$$(for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages: $$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi
	@touch $@

$(BUILD)/.gomod: go.mod go.sum
	@mkdir -p $(BUILD)
	$(GO) mod download
	@touch $@

## build: the appliance binary.
build: deps
	$(GO) build -o $(BIN)/foundry ./cmd/foundry

## images: everything `foundry serve` serves from image_dir.
images: ipxe-images

ipxe-images: $(BUILD)/.apt
	@mkdir -p images/ipxe
	cp /usr/lib/ipxe/undionly.kpxe /usr/lib/ipxe/ipxe.efi /usr/lib/ipxe/snponly.efi images/ipxe/

## test: the whole suite — unit, integration in network namespaces, and
## emulated machines. This is what CI runs.
test: deps images
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 45m ./...

## unit: only the tests that need no root and no namespaces.
unit: deps
	$(GO) test -count=1 -short ./...

## demo: the appliance in a private network namespace with an emulated
## machine PXE-booting into discovery; prints the dashboard URL.
demo: build images
	./test/demo.sh start

demo-stop:
	./test/demo.sh stop

## bench: DHCP throughput and other numbers, against peers in the same run.
bench: build images
	$(GO) test -run '^$$' -bench . -benchtime 1x ./bench/...

clean:
	rm -rf $(BIN) $(BUILD) images/ipxe images/discovery
