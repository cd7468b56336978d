package inventory

import (
	"bufio"
	"bytes"
	"strconv"
	"strings"
)

// cpu reads /proc/cpuinfo.
func (r *reader) cpu() CPU {
	b, err := readLimited(r.path("/proc/cpuinfo"))
	if err != nil {
		r.warn("read /proc/cpuinfo: %v", err)
		return CPU{Flags: []string{}}
	}
	return parseCPUInfo(b)
}

// parseCPUInfo summarises the per-processor blocks of /proc/cpuinfo. Sockets
// are distinct "physical id"s, cores distinct (physical id, core id) pairs,
// threads the processor blocks. Without topology lines (some hypervisors,
// arm64) every processor counts as one core of one socket.
func parseCPUInfo(b []byte) CPU {
	c := CPU{Flags: []string{}}
	sockets := map[string]bool{}
	cores := map[[2]string]bool{}
	var phys, core string
	inBlock := false
	flush := func() {
		if !inBlock {
			return
		}
		c.Threads++
		if phys != "" {
			sockets[phys] = true
		}
		if core != "" {
			cores[[2]string{phys, core}] = true
		}
		phys, core, inBlock = "", "", false
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64*1024), maxFile)
	for sc.Scan() {
		line := validText(sc.Text())
		key, val, ok := strings.Cut(line, ":")
		if !ok {
			if strings.TrimSpace(line) == "" {
				flush()
			}
			continue
		}
		key, val = strings.TrimSpace(key), strings.TrimSpace(val)
		switch key {
		case "processor":
			if _, err := strconv.Atoi(val); err == nil {
				flush()
				inBlock = true
			}
		case "model name":
			if c.Model == "" {
				c.Model = val
			}
		case "vendor_id":
			if c.Vendor == "" {
				c.Vendor = val
			}
		case "physical id":
			phys = val
		case "core id":
			core = val
		case "flags", "Features":
			if len(c.Flags) == 0 {
				c.Flags = strings.Fields(val)
			}
		}
	}
	flush()
	c.Sockets = len(sockets)
	if c.Sockets == 0 && c.Threads > 0 {
		c.Sockets = 1
	}
	c.Cores = len(cores)
	if c.Cores == 0 {
		c.Cores = c.Threads
	}
	return c
}

// memory reads MemTotal from /proc/meminfo.
func (r *reader) memory() Memory {
	b, err := readLimited(r.path("/proc/meminfo"))
	if err != nil {
		r.warn("read /proc/meminfo: %v", err)
		return Memory{DIMMs: []DIMM{}}
	}
	total := parseMemTotal(b)
	return Memory{TotalBytes: total, UsableBytes: total, DIMMs: []DIMM{}}
}

// parseMemTotal returns MemTotal in bytes, 0 when absent or malformed.
func parseMemTotal(b []byte) uint64 {
	for line := range strings.Lines(string(b)) {
		rest, ok := strings.CutPrefix(line, "MemTotal:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			return 0
		}
		kb, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil || kb > 1<<53 {
			return 0
		}
		if len(f) > 1 && f[1] != "kB" {
			return 0
		}
		return kb * 1024
	}
	return 0
}
