"""Everything that starts, confines, talks to or kills a process: workers, their fork server, the
file-system view and users they run as, the wire protocol, and the sweep of what they leave."""
