export { createSampleSchema, dropSampleSchema, SAMPLE_TABLES } from './schema.js';
export { seedSample, touchRows, cancelRows, softDeleteRows, sqlTime, sampleNow, SAMPLE_TIME_ZONE, SAMPLE_LEAVE_TYPES, type SeedOptions, type SeedResult } from './seed.js';
