// Package faults holds the fault-injection tests of issue 7 ("Prove it
// survives"): the real api, worker and migrate binaries run as processes
// against a real Redis, a real MinIO and SQLite, and each test breaks one
// thing (a worker killed mid-synthesis, a deploy's SIGTERM, Redis lost or
// down, object storage down during the upload, the disk store full, the
// database's write lock held, a user's cancel) and then
// checks the same invariants. RELIABILITY.md at the repository root reports
// what they prove and what they measured.
//
// The only non-test code is Proxy, a TCP relay the tests cut and restore to
// take a dependency "down" without losing its data.
package faults
