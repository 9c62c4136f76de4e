"""The proxy layer: request pipeline, upstream balancers, the keepalive pool of idle upstream
connections, the upstream exchange and the tunnel for upgraded connections."""
