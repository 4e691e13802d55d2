"""Settings for the whole suite.

* Hypothesis runs without deadlines: parallel workers (pytest-xdist) and a shared machine make
  a test's timing meaningless, and a deadline then fails a sound test. ``make check`` loads the
  ``check`` profile (fewer examples where a test does not set its own number).
* The ``slow`` marker on the tests below, which together make up most of the suite's time
  (each took 2.5 s or more in a run of 2026-12-07 on a shared, loaded 2-core machine: junit
  times per test, one directory at a time);
  ``make check`` leaves them out, ``make test`` runs them. A test may also carry
  ``@pytest.mark.slow`` itself. Slow tests get a longer timeout than the default 300 s.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import settings

settings.register_profile("evstore", deadline=None)
settings.register_profile("check", deadline=None, max_examples=25)
settings.load_profile(os.environ.get("EVSTORE_HYPOTHESIS_PROFILE", "evstore"))

SLOW_TIMEOUT = 900

# file::test (every parametrization of it)
SLOW = {
    "tests/sim/test_des.py::test_small_clusters_converge_after_faults",  # 78.9 s
    "tests/net/test_liveness.py::test_a_frozen_peer_is_reported_down_and_comes_back",  # 7.8 s
    "tests/cli/test_startup.py::test_status_and_show_print_what_the_typer_commands_print",  # 4.1 s
    "tests/test_runnable_docs.py::test_runnable_block_works_when_pasted",  # 5.6 s (index.md)
    "tests/storage/test_rebuild_fast.py::test_the_fast_path_gives_the_general_entry",  # 55.6 s
    "tests/sim/test_convergence.py::test_random_schedule_converges",  # 46.4 s
    "tests/core/test_encoding.py::test_key_insertion_order_does_not_matter",  # 41.2 s
    "tests/core/test_catalog.py::test_validate_is_idempotent",  # 39.0 s
    "tests/cli/test_cluster_menu.py::test_menu_join_to_an_unreachable_member_says_so_and_goes_on",  # 32.2 s
    "tests/net/test_multiprocess.py::test_three_processes_join_survive_a_kill_and_a_partition",  # 27.6 s
    "tests/core/test_state.py::test_any_order_duplicates_and_batches_converge",  # 24.5 s
    "tests/core/test_encoding.py::test_unsorted_keys_are_refused",  # 23.9 s
    "tests/consume/test_cluster_consume.py::test_a_watcher_on_b_prints_a_commit_made_on_a",  # 22.1 s
    "tests/storage/test_rebuild.py::test_canonical_text_is_the_canonical_encoding",  # 21.9 s
    "tests/storage/test_rebuild_fast.py::test_the_shortest_path_gives_the_general_entry",  # 21.3 s
    "tests/storage/test_fork_settling.py::test_every_order_ends_with_the_earlier_branch",  # 19.3 s
    "tests/web/test_pages.py::test_every_page_redirects_to_login_without_a_session",  # 18.1 s
    "tests/core/test_catalog.py::test_check_references_never_crashes",  # 17.8 s
    "tests/core/test_sync.py::test_near_messages_raise_only_sync_error",  # 15.3 s
    "tests/cli/test_demo.py::test_demo_runs_a_real_cluster_and_leaves_nothing_running",  # 13.9 s
    "tests/net/test_flood.py::test_members_get_through_a_flood_of_idle_connections",  # 13.2 s
    "tests/net/test_metrics.py::test_metrics_of_a_three_process_cluster",  # 12.8 s
    "tests/storage/test_rebuild.py::test_canonical_text_without_orjson_too",  # 11.8 s
    "tests/core/test_encoding.py::test_round_trip",  # 10.6 s
    "tests/cli/test_cluster_admin.py::test_join_enables_this_machines_cluster_only_port_when_asked",  # 10.3 s
    "tests/cli/test_forensics_cli.py::test_loadconfig_refuses_standalone_files_bad_files_and_unsafe_xml",  # 9.8 s
    "tests/cli/test_forensics_cli.py::test_loadconfig_maps_groups_and_copies_machines_only_when_asked",  # 8.9 s
    "tests/storage/test_rebuild_migration.py::test_views_carry_on_after_the_migration",  # 8.8 s
    "tests/core/test_encoding.py::test_standard_json_reads_the_same_value",  # 8.6 s
    "tests/storage/test_rebuild.py::test_rebuild_from_the_log_on_one_and_two_cores",  # 8.4 s
    "tests/cli/test_operator_traps.py::test_a_deleted_group_is_not_listed_and_its_namesake_is_new",  # 8.2 s
    "tests/cli/test_forensics_cli.py::test_rollback_brings_settings_back_to_a_time",  # 7.6 s
    "tests/cli/test_startup.py::test_a_command_needing_a_missing_extra_names_it",  # 7.6 s
    "tests/cli/test_forensics_cli.py::test_loadconfig_one_machine_from_a_cluster_file",  # 7.6 s
    "tests/core/test_encoding.py::test_encoding_is_a_fixed_point",  # 7.3 s
    "tests/cli/test_forensics_cli.py::test_saveconfig_then_loadconfig_restores_the_cluster",  # 6.9 s
    "tests/cli/test_operator_traps.py::test_rollback_leaves_users_and_machine_settings_alone",  # 6.9 s
    "tests/cli/test_startup.py::test_usage_errors_are_one_line_with_exit_2",  # 6.8 s
    "tests/sim/test_convergence.py::test_trace_does_not_depend_on_hash_randomization",  # 6.8 s
    "tests/net/test_restore.py::test_rekey_refuses_a_member_that_holds_only_the_later_branch",  # 6.3 s
    "tests/core/test_encoding.py::test_pretty_printed_json_is_refused",  # 6.3 s
    "tests/core/test_encoding_fastpath.py::test_fast_path_agrees_with_the_reference",  # 6.3 s
    "tests/cli/test_operator_traps.py::test_rollback_includes_them_when_asked_destructive_first",  # 6.2 s
    "tests/cli/test_forensics_cli.py::test_audit_filters_by_mode_origin_kind_time_and_limit",  # 6.2 s
    "tests/cli/test_startup.py::test_status_and_show_import_no_network_web_or_trio",  # 6.1 s
    "tests/cli/test_forensics_cli.py::test_revert_stages_the_inverse_of_one_commit",  # 6.1 s
    "tests/cli/test_forensics_cli.py::test_replay_reads_the_wal_of_a_copy_taken_by_hand",  # 5.9 s
    "tests/cli/test_forensics_cli.py::test_revert_and_rollback_need_the_passphrase",  # 5.9 s
    "tests/net/test_restore.py::test_the_restored_branch_kept_through_a_member_that_still_applies_the_original",  # 5.8 s
    "tests/net/test_rejoin.py::test_removed_machine_joins_again_by_every_path",  # 5.7 s
    "tests/cli/test_forensics_cli.py::test_audit_catches_up_after_new_commits",  # 5.5 s
    "tests/core/test_encoding.py::test_fast_encoders_write_the_canonical_bytes_or_step_aside",  # 5.5 s
    "tests/storage/test_rebuild.py::test_the_json_module_writes_what_orjson_writes",  # 5.4 s
    "tests/cli/test_forensics_cli.py::test_replay_needs_no_home_and_refuses_junk",  # 5.3 s
    "tests/storage/test_rebuild.py::test_two_cores_fall_back_when_this_side_fails_while_copying",  # 5.3 s
    "tests/cli/test_cluster_menu.py::test_menu_join_over_the_admin_port_is_the_join_command",  # 5.2 s
    "tests/cli/test_forensics_cli.py::test_audit_lists_each_change_oldest_first",  # 5.2 s
    "tests/consume/test_render.py::test_on_a_cluster_a_file_rendered_on_c_follows_commits_on_a",  # 5.1 s
    "tests/cli/test_config_cli.py::test_cluster_group_override_commit_and_inheritance",  # 5.1 s
    "tests/cli/test_cluster_admin.py::test_a_guest_changes_its_own_passphrase",  # 5.1 s
    "tests/storage/test_rebuild.py::test_rebuild_equals_incremental",  # 5.1 s
    "tests/cli/test_config_cli.py::test_deletegroup_keeps_settings_on_its_machines",  # 4.9 s
    "tests/cli/test_forensics_cli.py::test_loadconfig_on_a_standalone_machine",  # 4.8 s
    "tests/cli/test_forensics_cli.py::test_blame_names_mode_and_event_of_each_value",  # 4.6 s
    "tests/cli/test_forensics_cli.py::test_replay_rebuilds_any_point_offline_without_touching_the_copy",  # 4.5 s
    "tests/net/test_node.py::test_disconnect_stops_every_exchange_and_reconnect_converges",  # 4.4 s
    "tests/consume/test_cli_consume.py::test_bad_input_exits_2_naming_the_nearest",  # 4.4 s
    "tests/cli/test_config_cli.py::test_commit_conflict_keeps_changes_staged",  # 4.3 s
    "tests/cli/test_backup.py::test_backup_is_consistent_private_and_replayable",  # 4.2 s
    "tests/cli/test_forensics_cli.py::test_verify_passes_a_sound_log_and_fails_a_tampered_one",  # 4.2 s
    "tests/net/test_restore.py::test_a_losing_branch_that_reached_a_lagging_peer_is_settled_everywhere",  # 4.0 s
    "tests/cli/test_forensics_cli.py::test_diff_between_two_times",  # 3.9 s
    "tests/cli/test_forensics_cli.py::test_audit_refuses_bad_filters_in_one_line",  # 3.9 s
    "tests/web/test_pages.py::test_resolve_makes_the_lost_version_apply_as_the_logged_in_user",  # 3.9 s
    "tests/storage/test_rebuild.py::test_two_cores_fall_back_to_one_when_the_worker_fails",  # 3.8 s
    "tests/web/test_pages.py::test_repeated_wrong_passphrases_lock_the_address_out",  # 3.8 s
    "tests/net/test_node.py::test_a_node_that_stops_is_reported_down_then_up_again",  # 3.7 s
    "tests/sim/test_des.py::test_same_seed_same_trace_and_state",  # 3.6 s
    "tests/consume/test_render.py::test_a_template_error_exits_2_naming_the_line_and_leaves_the_file",  # 3.6 s
    "tests/sim/test_convergence.py::test_same_seed_same_trace",  # 3.6 s
    "tests/web/test_pages.py::test_changing_the_user_name_does_not_get_past_the_lockout",  # 3.5 s
    "tests/cli/test_run_gui.py::test_run_gui_serves_the_pages_beside_the_node",  # 3.5 s
    "tests/consume/test_cli_consume.py::test_watch_prints_a_commit_made_by_another_evstore_command",  # 3.5 s
    "tests/net/test_restore.py::test_a_restored_branch_stamped_first_stays_and_rekey_issues_the_original_again",  # 3.5 s
    "tests/cli/test_node_cmds.py::test_commitdetail_and_detach_on_a_standalone_machine",  # 3.5 s
    "tests/storage/test_rebuild.py::test_a_rebuild_leaves_the_connection_settings_as_they_were",  # 3.4 s
    "tests/storage/test_log.py::test_any_order_any_batches_converge",  # 3.4 s
    "tests/net/test_node.py::test_fanout_dials_fewer_members_and_still_converges",  # 3.3 s
    "tests/cli/test_cluster_admin.py::test_connstatus_shows_name_resolution_and_time_in_state",  # 3.3 s
    "tests/net/test_restore.py::test_restored_and_written_while_cut_off_forks_then_rekey_recovers",  # 3.3 s
    "tests/cli/test_completion.py::test_sections_modes_and_machines_complete",  # 3.2 s
    "tests/cli/test_node_cmds.py::test_ccsconfig_shows_enables_and_disables",  # 3.2 s
    "tests/sim/test_des.py::test_rerun_a_seed_from_the_command_line_under_any_hash_seed",  # 3.2 s
    "tests/ops/test_membership.py::test_removed_machine_joins_again_as_a_new_membership",  # 3.2 s
    "tests/storage/test_rebuild.py::test_a_slow_resolve_on_two_cores_waits_for_the_copies",  # 3.1 s
    "tests/consume/test_render.py::test_rendered_again_and_again_a_reader_sees_whole_files",  # 3.1 s
    "tests/net/test_node.py::test_a_removed_machine_turns_standalone_and_stops_dialing",  # 3.0 s
    "tests/web/test_pages.py::test_ignore_keeps_the_result_and_stops_reporting_it",  # 3.0 s
    "tests/net/test_node.py::test_join_then_a_commit_reaches_everyone_at_once",  # 3.0 s
    "tests/ops/test_history.py::test_fold_equals_the_reference_projection",  # 3.0 s
    "tests/web/test_pages.py::test_only_an_admin_may_resolve_or_ignore",  # 3.0 s
    "tests/consume/test_render.py::test_write_if_changed_is_atomic_for_a_reader",  # 2.9 s
    "tests/net/test_node.py::test_a_commit_is_relayed_when_the_direct_link_is_cut",  # 2.9 s
    "tests/net/test_cluster_admin_net.py::test_a_secondary_box_takes_no_join_and_stays_a_member",  # 2.8 s
    "tests/ops/test_membership.py::test_concurrent_changes_converge_and_loser_is_kept",  # 2.8 s
    "tests/net/test_node.py::test_hostile_peers_are_refused_and_nothing_is_stored",  # 2.8 s
    "tests/consume/test_cli_consume.py::test_help_and_unusual_lines_go_to_typer",  # 2.6 s
    "tests/ops/test_membership.py::test_connstatus_resolves_announced_names_and_says_since_when",  # 2.6 s
    "tests/cli/test_config_cli.py::test_removemachine_flattens_to_standalone",  # 2.6 s
    "tests/cli/test_cluster_admin.py::test_a_secondary_box_serves_no_web_pages",  # 2.6 s
    "tests/web/test_pages.py::test_clustercheck_shows_both_versions_and_unreachable_machines",  # 2.6 s
    "tests/cli/test_cluster_menu.py::test_menu_creates_a_cluster_adds_a_group_sets_it_and_lists",  # 2.5 s
    "tests/cli/test_cluster_menu.py::test_end_of_input_leaves_the_menu_and_errors_keep_it_going",  # 2.5 s
    "tests/net/test_guessing.py::test_join_guesses_back_off_per_address_and_hash_off_the_database",  # 2.5 s
    "tests/ops/test_membership.py::test_rename_and_setgroup_concurrently_do_not_strand",  # 2.5 s
    "tests/net/test_restore.py::test_restored_then_reconnected_before_writing_catches_up",  # 2.5 s
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.nodeid.split("[")[0] in SLOW:
            item.add_marker(pytest.mark.slow)
        if item.get_closest_marker("slow") and not item.get_closest_marker("timeout"):
            item.add_marker(pytest.mark.timeout(SLOW_TIMEOUT))
