/**
 * Engine processes: every process that runs a dispatcher keeps a row here with a heartbeat, renewed
 * with its device leases and expiring with them. It is how processes sharing one PostgreSQL
 * database learn how many of them are alive, so each serves about its share of the devices: a
 * process that joins is handed devices by the others, and a process that dies stops counting once
 * its heartbeat lapses, when its leases lapse too.
 */
export const sql = `
create table engine_processes (
  owner text primary key,
  host text not null,
  pid integer not null,
  role text not null,
  started_at timestamptz not null,
  heartbeat_at timestamptz not null,
  expires_at timestamptz not null,
  devices integer not null default 0
);
`;
