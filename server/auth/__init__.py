"""Authentication and authorization (DESIGN §5.3; docs/security.md), in one place.

- `keys`: key material and accepted algorithms from the settings (refuses unsafe ones).
- `tokens`: the JWT `Verifier` (token -> `server.domain.principal.Principal`) and `mint`.
- `gate`: `Gate.require(scope, permissions)`, which REST, GraphQL (HTTP and websockets), the
  server-sent events and the observability endpoints all call; raises the domain errors
  `AuthenticationFailed` (401) / `AuthorizationFailed` (403).
- `middleware`: header caps, token verification once per connection, rate limiting, security
  headers and CORS.
- `ratelimit`: the optional rate limiter.
- `browser`: what another site could make a browser do: the Host (DNS rebinding), JSON-only
  bodies and the Origin of state changes and websockets (CSRF), and open mode on loopback.

The permission each use case needs is in ONE table, `server.domain.permissions`; the surfaces
map their operations onto it: `rest_compat.routes.OPERATIONS` (REST) and
`graphql_schema.permissions.FIELD_PERMISSIONS` (GraphQL).
"""
