// Moved to infer/ (generation itself stops on these); kept as a re-export for serve/ imports.
export * from '../infer/stop-strings.ts';
