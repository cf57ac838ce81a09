"""The bundled demo corpus (fictitious outlets and stories) and the loopback server that serves it."""
