"""Control Room engine: everything that is not drawing on a terminal."""
