export * from '../train/rng.ts'; // TEMP: moved at integration
