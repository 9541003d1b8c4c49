package dev

import "time"

// SetClock replaces the issuer's clock. Call it before using the issuer.
func SetClock(i *Issuer, now func() time.Time) { i.now = now }
