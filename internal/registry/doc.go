// Package registry holds the built-in plugin modules, keyed by namespaced
// ID ("writer.files", "notifier.exec", ...). Built-ins register in init(),
// the way caddy modules do; a duplicate ID panics. It is host machinery, not
// a public API.
package registry
