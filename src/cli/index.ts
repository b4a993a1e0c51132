#!/usr/bin/env node
import { main } from './main.js';

process.exitCode = await main(process.argv);
// Under a process manager that forks with an IPC channel (pm2), the channel keeps the event
// loop alive after the work is done (pm2's in-process agent listens on it), so the process
// would linger until SIGKILL and a config error would look "online". Unref it rather than
// disconnect: the agent may still send on it until the loop ends, and a send on a closed
// channel makes the agent exit with code 1, hiding the real exit code.
process.channel?.unref();
