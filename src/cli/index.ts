#!/usr/bin/env node
import { main } from './main.js';

process.exitCode = await main(process.argv);
// Under a process manager that forks with an IPC channel (pm2), the open channel keeps the
// event loop alive after the work is done, so the process would linger until SIGKILL (and a
// config error would look "online"). Everything is flushed by now: let go of the channel.
if (process.connected) process.disconnect();
