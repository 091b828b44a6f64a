/* replica.c's guard on libraft's outgoing answers: libraft 0.15 answers a
 * snapshot install once it is stored, whatever the node became meanwhile,
 * to follower_state.current_leader, a member of a union; read in another
 * state its address is the candidate's or the leader's fields (0x100 for a
 * candidate in pre-vote) and raft_uv's strlen of it crashed the Raft
 * thread. Those answers are dropped; every real one passes. */
#include <criterion/criterion.h>

#include <raft.h>
#include <string.h>

#include "replica.h"

static struct raft raft;

/* The message libraft's sendAppendEntriesResult builds. */
static struct raft_message answer_to_current_leader(void)
{
    return (struct raft_message){ .type = RAFT_IO_APPEND_ENTRIES_RESULT,
                                  .server_id = raft.follower_state.current_leader.id,
                                  .server_address = raft.follower_state.current_leader.address };
}

static void init(void)
{
    memset(&raft, 0, sizeof raft);
}

TestSuite(replica_send, .init = init);

Test(replica_send, candidate_in_pre_vote_answering_a_snapshot_is_dropped)
{
    static bool votes[3];
    raft.state = RAFT_CANDIDATE;
    raft.candidate_state.votes = votes;
    raft.candidate_state.disrupt_leader = false;
    raft.candidate_state.in_pre_vote = true;
    struct raft_message m = answer_to_current_leader();
    cr_assert_eq((uintptr_t)m.server_address, 0x100, "the union gives the address 0x100 the crash showed");
    cr_expect(replica_answer_misaddressed(&raft, &m));
    raft.candidate_state.in_pre_vote = false;
    m = answer_to_current_leader();
    cr_expect(replica_answer_misaddressed(&raft, &m), "a candidate past pre-vote: a NULL address");
}

Test(replica_send, leader_answering_a_snapshot_is_dropped)
{
    static struct raft_progress progress[5];
    static struct raft_change change;
    raft.state = RAFT_LEADER;
    raft.leader_state.progress = progress;
    raft.leader_state.change = &change;
    raft.leader_state.promotee_id = 4;
    struct raft_message m = answer_to_current_leader();
    cr_expect(replica_answer_misaddressed(&raft, &m));
}

Test(replica_send, follower_of_no_known_leader_is_dropped)
{
    raft.state = RAFT_FOLLOWER;
    struct raft_message m = answer_to_current_leader();
    cr_expect(replica_answer_misaddressed(&raft, &m));
}

Test(replica_send, real_answers_pass)
{
    char leader[] = "127.0.0.1:17001/127.0.0.1:7001", stale[] = "127.0.0.1:17002/127.0.0.1:7002";
    raft.state = RAFT_FOLLOWER;
    raft.follower_state.current_leader.id = 1;
    raft.follower_state.current_leader.address = leader;
    struct raft_message m = answer_to_current_leader();
    cr_expect(!replica_answer_misaddressed(&raft, &m), "a follower's answer to its leader");
    /* a candidate rejecting a stale leader's AppendEntries: to the sender's real address */
    memset(&raft, 0, sizeof raft);
    static bool votes[3];
    raft.state = RAFT_CANDIDATE;
    raft.candidate_state.votes = votes;
    raft.candidate_state.in_pre_vote = true;
    m = (struct raft_message){ .type = RAFT_IO_APPEND_ENTRIES_RESULT, .server_id = 2, .server_address = stale };
    cr_expect(!replica_answer_misaddressed(&raft, &m), "a candidate's rejection of a stale leader");
    m = (struct raft_message){ .type = RAFT_IO_REQUEST_VOTE, .server_id = 2, .server_address = stale };
    cr_expect(!replica_answer_misaddressed(&raft, &m), "other messages");
}
