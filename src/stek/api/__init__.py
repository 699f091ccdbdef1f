"""HTTP routes, one router per area of the API. Each function serves the routers it owns."""
