-- Room on each page of events for the lease a worker writes on the events it takes: that update
-- changes no indexed column, so with room on the page it is a heap-only tuple update (no new
-- entry in any of the table's five indexes). The API writes each event once, then a worker
-- leases and marks it: at 100 % full pages every lease was a full update. Only pages written
-- from now on keep the room.
ALTER TABLE events SET (fillfactor = 70);
