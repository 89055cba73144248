package config

import (
	"errors"
	"strconv"

	"github.com/sluice-proxy/sluice/gateway/registry"
)

// Error is a configuration error located in its file: Error() reads
// "file:line: key: msg", without ":line" when the line is unknown (0) and
// without "key: " when the error is about the whole file.
type Error struct {
	// File is the path the config was loaded from.
	File string
	// Line is the 1-based line of Key, or 0 if unknown.
	Line int
	// Key is the key path, e.g. "listener[0].filter_chain[0].filter[1].name".
	Key string
	// Msg says what is wrong.
	Msg string
}

// Error formats the error as "file:line: key: msg".
func (e *Error) Error() string {
	s := e.File
	if s == "" {
		s = "config"
	}
	if e.Line > 0 {
		s += ":" + strconv.Itoa(e.Line)
	}
	if e.Key != "" {
		s += ": " + e.Key
	}
	return s + ": " + e.Msg
}

// errorf returns an *Error about key, located with c's line index.
func (c *Config) errorf(key, msg string) *Error {
	return &Error{File: c.Path, Line: c.Line(key), Key: key, Msg: msg}
}

// FieldError turns err, returned while building the filter whose table is at
// path (a Filter's Path), into an *Error with the file and line. A
// *registry.FieldError in err's chain names a key relative to the filter's
// config table; other errors are reported against path itself. An *Error is
// returned unchanged. FieldError returns nil when err is nil.
func (c *Config) FieldError(path string, err error) error {
	if err == nil {
		return nil
	}
	var ce *Error
	if errors.As(err, &ce) {
		return ce
	}
	var fe *registry.FieldError
	if errors.As(err, &fe) {
		key := path + ".config"
		if fe.Key != "" {
			key += "." + fe.Key
		}
		msg := "invalid value"
		if fe.Err != nil {
			msg = fe.Err.Error()
		}
		return c.errorf(key, msg)
	}
	return c.errorf(path, err.Error())
}

// TableError turns err, returned while building the table at path (e.g. a
// filter chain's "tls"), into an *Error with the file and line. A
// *registry.FieldError names a key relative to that table.
func (c *Config) TableError(path string, err error) error {
	if err == nil {
		return nil
	}
	var fe *registry.FieldError
	if errors.As(err, &fe) {
		key := path
		if fe.Key != "" {
			key += "." + fe.Key
		}
		return c.errorf(key, fe.Err.Error())
	}
	return c.errorf(path, err.Error())
}
