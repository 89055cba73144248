package config

// RouteConfig returns the route_config named name, or nil.
func (c *Config) RouteConfig(name string) *RouteConfig {
	for i := range c.RouteConfigs {
		if c.RouteConfigs[i].Name == name {
			return &c.RouteConfigs[i]
		}
	}
	return nil
}

// Cluster returns the cluster named name, or nil.
func (c *Config) Cluster(name string) *Cluster {
	for i := range c.Clusters {
		if c.Clusters[i].Name == name {
			return &c.Clusters[i]
		}
	}
	return nil
}
