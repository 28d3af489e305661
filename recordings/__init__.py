"""Sessions on disk: writer, reader and replay (see DESIGN.md, "Sessions on disk")."""
