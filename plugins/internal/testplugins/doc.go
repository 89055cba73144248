// Package testplugins holds misbehaving and scripted authorization plugins
// that sluice's tests build and run as real executables: crash (exits or
// blocks on demand), hang (never answers), slow (answers after a delay),
// garbage (answers invalid responses) and echo (allows or denies as the
// request asks, reporting what it saw).
package testplugins
