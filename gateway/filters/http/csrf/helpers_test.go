package csrf

import (
	bt "github.com/BurntSushi/toml"
)

// toml decodes text strictly into c.
func toml(c *Config, text string) error {
	_, err := bt.Decode(text, c)
	return err
}
