package main

import (
	"net/url"
	"os"
	"strings"

	"github.com/foundry-appliance/foundry/names"
	"github.com/foundry-appliance/foundry/store/kv"
)

// fileEtcd is the store.etcd section: the cluster a group of appliances
// shares (docs/scale-out.md).
type fileEtcd struct {
	Endpoints []string `yaml:"endpoints"`
	// Cert and Key are the client certificate etcd asks for (with
	// --client-cert-auth), CA the authority of the members' certificates.
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
	CA   string `yaml:"ca"`
	// Prefix keeps this fleet's keys apart from anything else in the
	// cluster; every appliance of one fleet names the same prefix.
	Prefix         string `yaml:"prefix"`
	RequestTimeout string `yaml:"request_timeout"`
	MaxTxnOps      int    `yaml:"max_txn_ops"`
}

// storeBackend checks store.backend and store.etcd: nil for Badger (the
// default), else the etcd engine's options.
func storeBackend(errs *configErrors, backend string, f *fileEtcd) *kv.EtcdOptions {
	switch backend {
	case "", "badger":
		if f != nil {
			errs.add("store.etcd", "set only with store.backend: etcd")
		}
		return nil
	case "etcd":
	default:
		errs.add("store.backend", "%s is not one of badger, etcd", names.Label(backend))
		return nil
	}
	if f == nil || len(f.Endpoints) == 0 {
		errs.add("store.etcd.endpoints", "store.backend etcd needs the cluster's client URLs, such as https://10.0.0.1:2379")
		return nil
	}
	o := &kv.EtcdOptions{Endpoints: f.Endpoints, CertFile: f.Cert, KeyFile: f.Key, CAFile: f.CA, Prefix: f.Prefix, MaxTxnOps: f.MaxTxnOps}
	tlsWanted := f.Cert != "" || f.CA != ""
	for _, e := range f.Endpoints {
		u, err := url.Parse(e)
		switch {
		case err != nil || u.Host == "" || u.Port() == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil:
			errs.add("store.etcd.endpoints", "%s is not a client URL such as https://10.0.0.1:2379", names.Label(e))
		case u.Scheme != "http" && u.Scheme != "https":
			errs.add("store.etcd.endpoints", "%s: the scheme is http or https", names.Label(e))
		case u.Scheme == "http" && tlsWanted:
			errs.add("store.etcd.endpoints", "%s is plain http, but a client certificate or CA is set: use https", names.Label(e))
		}
	}
	if (f.Cert == "") != (f.Key == "") {
		errs.add("store.etcd", "cert and key are set together")
	}
	for key, file := range map[string]string{"store.etcd.cert": f.Cert, "store.etcd.key": f.Key, "store.etcd.ca": f.CA} {
		if file == "" {
			continue
		}
		if _, err := os.Stat(file); err != nil {
			errs.add(key, "%v", err)
		}
	}
	if f.Prefix != "" && (strings.ContainsAny(f.Prefix, "\x00\n") || !strings.HasSuffix(f.Prefix, "/")) {
		errs.add("store.etcd.prefix", "%s must end in / (such as foundry/ or site-a/foundry/)", names.Label(f.Prefix))
	}
	if f.MaxTxnOps != 0 && f.MaxTxnOps < 64 {
		errs.add("store.etcd.max_txn_ops", "%d is below 64; set the cluster's --max-txn-ops (default 128)", f.MaxTxnOps)
	}
	o.RequestTimeout = duration(errs, "store.etcd.request_timeout", f.RequestTimeout, 0)
	return o
}
