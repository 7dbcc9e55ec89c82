"""The dashboard: server-rendered pages over the control plane's state, behind a token sign-in."""
