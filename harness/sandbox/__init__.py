"""Run untrusted submission code: bubblewrap (or plain process) workers behind a pipe protocol."""
