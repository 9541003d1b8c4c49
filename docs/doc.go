// Package docs holds the project's prose documentation. Its only Go code
// is docs_test.go, which runs every command of writing-a-plugin.md so that
// the walkthrough cannot rot.
package docs
