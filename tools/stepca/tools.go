//go:build tools

// Package stepca pins the smallstep step-ca release that the issuer-stepca
// integration test builds and runs. It is a separate module so that step-ca's
// dependency graph never reaches the agent's own go.mod.
// scripts/build-stepca.sh builds from here.
package stepca

import (
	_ "github.com/smallstep/certificates/cmd/step-ca"
)
