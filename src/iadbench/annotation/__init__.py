"""The Label Studio round trip: label config, local server, push tasks, pull the versioned export."""
