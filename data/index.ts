/** course-data: the data the course trains on. */
export { loadSpeeches, loadStateOfTheUnion, toPlainAscii } from "./sotu.js";
export type { Speech, SotuOptions } from "./sotu.js";
