// The page's entry point: starts the live event stream, the API forms and the "N s ago" clock.
// Page modules (the frame grid, the upload) start themselves when their elements are present.
import { startLive } from './live.js';
import { startForms } from './forms.js';
import { startClock } from './ago.js';
import { startGrid } from './grid.js';
import './repeat.js';
import './upload.js';
import { startFarm } from './farm.js';

startForms();
startClock();
startGrid();
startLive();
startFarm();
