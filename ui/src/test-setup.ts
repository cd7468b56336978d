import { options } from 'preact';

// Preact runs effects after the next animation frame, or after a 35 ms
// timer that then calls cancelAnimationFrame. When a test file ends just
// after a render, vitest tears its jsdom down (animation frames and that
// global with it) and the timer throws "cancelAnimationFrame is not
// defined" into the next file: `make test` failed on it once, under load,
// in machines.test.tsx. Tests run effects on a plain timer, which needs no
// jsdom global; act() still flushes them at once inside render and events.
options.requestAnimationFrame = (flush) => {
  setTimeout(flush);
};
