/** course-data: the data the course trains on. */
export { loadSpeeches, loadStateOfTheUnion, toPlainAscii } from "./sotu.js";
export type { Speech, SotuOptions } from "./sotu.js";
export {
  TASKS,
  SYSTEM_PROMPTS,
  defaultInstructionOptions,
  generateInstructions,
  checkHeldOut,
} from "./instructions.js";
export type { TaskName, InstructionOptions } from "./instructions.js";
export {
  conversationsToJsonl,
  writeConversations,
  readConversations,
  readInstructions,
  instructionsFile,
  parseConversations,
  conversationProblems,
} from "./instructions-jsonl.js";
export type { Conversation } from "./instructions-jsonl.js";
export {
  lastQuestions,
  rejectedAnswer,
  preferencePairs,
  continentPracticeQuestions,
  NEW_CONTINENT_TEMPLATES,
  rewardQuestions,
  replayQuestions,
} from "./preferences.js";
export type { QuestionWithAnswer } from "./preferences.js";
