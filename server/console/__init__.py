"""The web console at /tasker/ui: static HTML and JavaScript over the public GraphQL API."""
