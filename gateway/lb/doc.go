// Package lb holds sluice's load-balancing policies: weighted round robin,
// least request (power of two choices), random, ring hash and maglev, with
// Envoy's semantics for slow start and the panic threshold.
//
// # Flow
//
// A cluster builds one Policy per config generation with New, hands it its
// host list with Update, and calls Pick for every request. Pick returns an
// index into the Hosts given to the last Update, or -1 when no host may take
// the request. The router fills a Request with the hash of the route's hash
// policy; only ring hash and maglev use it, and they pick a random host for
// a request without one.
//
// Update rebuilds what the policy derives from membership and weights (the
// weight table, the ring, the maglev table) and swaps it in with one atomic
// pointer store; Pick never locks and never allocates. Host health, requests
// in flight and the slow-start instant are read live through Hosts at each
// Pick, so a health change needs no Update.
//
// # Health and panic mode
//
// A policy picks among healthy hosts. When the share of healthy hosts falls
// below the panic threshold (50 % by default, 0 disables it), it picks among
// all hosts, healthy or not, as Envoy does: spreading load over every host
// beats crushing the few that remain.
//
// # Policies
//
//	lb_policy      picks                                           uses
//	round_robin    hosts in turn, in proportion to weight          weight, slow start
//	least_request  fewest requests in flight of 2 random choices   weight, active, slow start
//	random         a uniformly random host (weights ignored)       -
//	ring_hash      the host after the request hash on a ring       weight, address, hash
//	maglev         the host in the request hash's table slot       weight, address, hash
package lb
