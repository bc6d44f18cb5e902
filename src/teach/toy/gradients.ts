// Registers tfjs' gradient functions, which training needs and inference does not.
//
// tfjs-core's Node entry (dist/tf-core.node.js) registers kernels' forward functions only; the
// gradient functions live in dist/register_all_gradients.js, an ES module whose relative imports
// have no ".js" extension, which Node's ESM loader refuses. A resolve hook that retries such an
// import with ".js" loads it; the functions land in the gradient registry that every copy of
// tfjs-core shares (a global), so tf.grads / optimizers of the main copy find them.

import { register } from 'node:module';

const HOOK = `export async function resolve(specifier, context, next) {
  try { return await next(specifier, context); } catch (e) {
    if (specifier.startsWith('.') && !specifier.endsWith('.js') && context.parentURL && context.parentURL.includes('/@tensorflow/tfjs-core/dist/')) return next(specifier + '.js', context);
    throw e;
  }
}`;

let done = false;

export async function registerGradients(): Promise<void> {
  if (done) return;
  register('data:text/javascript,' + encodeURIComponent(HOOK));
  await import('@tensorflow/tfjs-core/dist/register_all_gradients.js' as string);
  done = true;
}
