// Entry point bundled into the worker: every workflow type lives in its own module and is re-exported here.
export { projectIntake } from './project-intake';
export { qcBatch } from './qc-batch';
export { datasetRelease } from './dataset-release';
export { humanReview } from './human-review';
export { modelQuantization } from './model-quantization';
export { modelRollout } from './model-rollout';
