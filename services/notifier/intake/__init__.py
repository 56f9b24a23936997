"""External alert intake: an HTTP endpoint that turns outside alerts into AlertEvents."""
