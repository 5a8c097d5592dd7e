"""Fixtures and tools the tests share (lakes written by hand, engine servers on loopback, worker processes).
Test modules import these, never each other."""
