package inventory

import (
	"bufio"
	"bytes"
	"net"
	"strings"
)

// nfsMounts lists the NFS file systems in /proc/mounts. The discovery OS
// mounts none itself; they show when the collector runs on an installed
// system or when a site's tooling mounted one.
func (r *reader) nfsMounts() []NFSMount {
	b, err := readLimited(r.path("/proc/mounts"))
	if err != nil {
		r.warn("read /proc/mounts: %v", err)
		return []NFSMount{}
	}
	return parseNFSMounts(b)
}

func parseNFSMounts(b []byte) []NFSMount {
	mounts := []NFSMount{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || (f[2] != "nfs" && f[2] != "nfs4") {
			continue
		}
		src := validText(unescapeMount(f[0]))
		// "server:/export", with the server in brackets when it is IPv6.
		i := strings.LastIndex(src, ":/")
		if i < 0 {
			continue
		}
		server := strings.TrimSuffix(strings.TrimPrefix(src[:i], "["), "]")
		mounts = append(mounts, NFSMount{
			Server:     server,
			Export:     src[i+1:],
			MountPoint: validText(unescapeMount(f[1])),
			FSType:     f[2],
			Options:    validText(f[3]),
		})
	}
	return mounts
}

// unescapeMount undoes the octal escapes (\040 for a space) of /proc/mounts.
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var out strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && isOctal(s[i+1]) && isOctal(s[i+2]) && isOctal(s[i+3]) {
			out.WriteByte((s[i+1]-'0')<<6 | (s[i+2]-'0')<<3 | (s[i+3] - '0'))
			i += 3
			continue
		}
		out.WriteByte(s[i])
	}
	return out.String()
}

func isOctal(c byte) bool { return c >= '0' && c <= '7' }

// iscsiSessions reads the open-iscsi transport class: one directory per
// session with its target name, and its connections' portals.
func (r *reader) iscsiSessions() []ISCSISession {
	sessions := []ISCSISession{}
	for _, s := range r.list("/sys/class/iscsi_session") {
		base := "/sys/class/iscsi_session/" + s
		sess := ISCSISession{
			Session:    s,
			TargetName: r.read(base + "/targetname"),
			Initiator:  r.read(base + "/initiatorname"),
		}
		// Connections are named connection<session number>:<cid>.
		num := strings.TrimPrefix(s, "session")
		for _, c := range r.list("/sys/class/iscsi_connection") {
			if !strings.HasPrefix(c, "connection"+num+":") {
				continue
			}
			cb := "/sys/class/iscsi_connection/" + c
			addr, port := r.read(cb+"/persistent_address"), r.read(cb+"/persistent_port")
			if addr == "" {
				addr, port = r.read(cb+"/address"), r.read(cb+"/port")
			}
			if addr != "" {
				sess.Portal = net.JoinHostPort(addr, firstNonEmpty(port, "3260"))
				break
			}
		}
		sessions = append(sessions, sess)
	}
	return sessions
}
