//go:build tools

// Package spire pins the SPIRE release that the integration tests build and
// run. It is a separate module so that SPIRE's large dependency graph never
// reaches the agent's own go.mod. scripts/build-spire.sh builds from here.
package spire

import (
	_ "github.com/spiffe/spire/cmd/spire-agent"
	_ "github.com/spiffe/spire/cmd/spire-server"
)
