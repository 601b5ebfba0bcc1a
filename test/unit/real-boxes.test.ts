import { test } from 'node:test';
import assert from 'node:assert/strict';
import { judgeBoxes, readJudgements, referenceObjects } from '../../bench/real-boxes';

// The shape of github.com/ZJW-92/Image_Annotation's judgements: extreme points per object, one list per person.
const obj = (type: string, x: number, y: number, w: number, h: number) => ({
  type, properties: { ObjectID: 1 }, selectionMethod: 'outer_points',
  boundaries: [{ boundaryPoints: [{ coords: [x, y + h / 2], edge: 'Left' }, { coords: [x + w / 2, y], edge: 'Bottom' }, { coords: [x + w, y + h / 2], edge: 'Right' }, { coords: [x + w / 2, y + h], edge: 'Top' }] }],
});

test('real boxes: extreme points become boxes, an object without points is reported, and the crowd reference judges a consensus', () => {
  const car = obj('Vehicle', 100, 100, 50, 40);
  const far = obj('Vehicle', 400, 100, 10, 8);
  const { judgements, dropped } = readJudgements({
    0: [car, far], 1: [car, far], 2: [car], 3: [car, { type: 'Pedestrian', boundaries: [] }],
  });
  assert.deepEqual(judgements[0]!.boxes[0], { x: 100, y: 100, w: 50, h: 40, class: 'Vehicle' });
  assert.deepEqual(dropped, ['judgement 3, object 1 (Pedestrian): 0 boundary points, a box needs at least 2']);
  const ref = referenceObjects(judgements);
  assert.deepEqual(ref.map((r) => [r.class, r.support]), [['Vehicle', 4], ['Vehicle', 2]]);
  const carBox = { x: 100, y: 100, w: 50, h: 40, class: 'Vehicle' };
  const farBox = { x: 400, y: 100, w: 10, h: 8, class: 'Vehicle' };
  // Half the crowd saw the far car: a majority object (2 of 4).
  assert.equal(judgeBoxes([carBox, farBox], ref, 4, 2), 'right');
  assert.equal(judgeBoxes([carBox], ref, 4, 2), 'missed');
  assert.equal(judgeBoxes([carBox, { ...farBox, dontCare: true }], ref, 4, 2), 'ignored');
  assert.equal(judgeBoxes([{ ...carBox, class: 'TwoWheeler' }, farBox], ref, 4, 2), 'class');
  assert.equal(judgeBoxes([carBox, farBox, { x: 700, y: 700, w: 20, h: 20, class: 'Vehicle' }], ref, 4, 2), 'invented');
  // Of a crowd of 6, 2 is a minority: either way is right; a don't-care region is never invented.
  assert.equal(judgeBoxes([carBox], ref, 6, 2), 'right');
  assert.equal(judgeBoxes([carBox, { x: 700, y: 700, w: 20, h: 20, class: 'Vehicle', dontCare: true }], ref, 6, 2), 'right');
});
