// Placeholder until the CPU kernel build lands: keeps `npm install` / `npm test` working.
