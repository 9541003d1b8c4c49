// Package config is the agent's configuration model and its loaders: the
// native agent.hcl schema and spiffe-helper's helper.conf, which is mapped
// onto the same model (there is no second code path after loading).
//
//	cfg, err := config.Load("agent.hcl")
//	if err != nil {
//		fmt.Print(config.FormatError(err, nil)) // file:line:col: error: ...
//	}
//
// No input takes the caller down: a file over MaxFileSize, or nested or
// chained deeper than MaxNesting or MaxChain, is refused by a byte scan
// before HCL parses it (HCL recurses per level, and a stack overflow is
// fatal), and a panic while parsing becomes a diagnostic. Every error of a
// file is reported at once, in time linear in their number. SCHEMA.md is
// the reference for both schemas and every check.
package config
