"""The operator dashboard: server-rendered pages, forms and a small live-update script."""
