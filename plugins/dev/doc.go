// Package dev is the issuer.dev plugin: an in-memory certificate authority
// for demos and tests. NOT FOR PRODUCTION: its CA key and JWT signing key
// are generated at start, live only in memory, and are lost on restart;
// anyone who trusts its bundle trusts whatever it signs. New logs a WARN
// saying so.
//
// It signs the CSR the core sends (the private key never leaves the core)
// with an ECDSA P-256 root CA, for SPIFFE IDs of its one trust domain only,
// and mints ES256 JWT-SVIDs. The CA rotates itself when a leaf would
// outlive it; the bundle carries the previous root until that root
// expires, so consumers never see a leaf their bundle cannot verify.
//
//	issuer "dev" {
//	  trust_domain = "example.org"
//	  ttl          = "1m"
//	  ca_ttl       = "24h"
//	}
package dev
