package main

import "net/url"

// tlsHosts are the names a served certificate must carry: the host of
// http.advertise, which booting machines are given and verify against.
// Validation has made advertise an absolute http(s) URL.
func tlsHosts(advertise string) []string {
	u, err := url.Parse(advertise)
	if err != nil || u.Hostname() == "" {
		return nil
	}
	return []string{u.Hostname()}
}
