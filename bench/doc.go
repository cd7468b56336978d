// Package bench holds Foundry's benchmarks (`make bench`): the speed
// targets of docs/spec.md §7, each measured against a real peer in the same run so
// that the printed ratio means something on whatever machine runs it.
//
//   - BenchmarkDHCPThroughput: `foundry serve` against Kea (memfile), both
//     loaded by perfdhcp through a relay.
//   - BenchmarkBootStorm: thousands of new machines doing DORA at once on a
//     discovery segment.
//   - BenchmarkTFTP: concurrent iPXE downloads from Foundry and tftp-hpa.
//   - BenchmarkImageSize: the discovery image against Tinkerbell Hook and
//     Foreman's discovery image.
//   - BenchmarkDHCPPair: two `foundry serve` as a DHCP pair on a
//     three-member etcd against a Kea HA pair (load balancing), and one
//     Foundry alone on the same etcd.
//   - BenchmarkScale, BenchmarkFullStorm: 100,000 machines in the store, and
//     10,000 simulated machines doing the whole discovery flow.
//
// The network benchmarks run inside a private network namespace (see
// test/nstest) and need root; README.md says how to run them and what they
// measured.
package bench
